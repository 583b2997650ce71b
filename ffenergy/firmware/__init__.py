"""Firmware tooling around the C firmware in ``c/`` (shipped with the package): the numpy hand-off, export, the bit-exact numpy
reference, the serial protocol codec, build and launch, and the DUT client. No torch."""
