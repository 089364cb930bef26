"""Trace-driven simulation of placement policies: the same policy objects the controller
runs, replayed against recorded spot capacity."""
