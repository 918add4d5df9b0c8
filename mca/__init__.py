"""The master coordination agent (MCA): its command line now, its runtime in a later change."""
