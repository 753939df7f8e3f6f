"""Reference runtime and cost model of the modeled accelerator (see the README's layout)."""
