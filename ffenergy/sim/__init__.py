"""Simulated hardware for the hardware-in-the-loop path: the INA226 logger process and its energy model."""
