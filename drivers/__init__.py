"""Power-source adapters (NUT, I2C HATs, GPIO pins), installed as ``piclusterd.drivers``."""
