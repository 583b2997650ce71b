"""Forward-Forward: the network, its training, its MAC counts and its learners."""
