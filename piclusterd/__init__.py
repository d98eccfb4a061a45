"""piclusterd: keep a Raspberry Pi k3s cluster alive through power cuts by shedding nodes on purpose."""

__version__ = "0.1.0"
