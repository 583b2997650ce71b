"""Energy meters: host counters (RAPL, NVML), wrappers (pyJoules, CodeCarbon), serial meters, a simulator."""

from ffenergy.meters.auto import MeterStatus, auto_meter, available_meters, make_meter

__all__ = ["MeterStatus", "auto_meter", "available_meters", "make_meter"]
