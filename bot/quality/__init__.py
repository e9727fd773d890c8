"""Quality: evaluation against question sets and the calibration of the confidence."""
