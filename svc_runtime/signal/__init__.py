"""Pure numpy signal helpers shared by the runtime and training (f0, volume, units, phases, slicing)."""
