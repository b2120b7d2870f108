"""Amaranth accelerator: datapath blocks, top level and whole-system simulation."""
