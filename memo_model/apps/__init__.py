"""Applications on top of the library: the command line (`cli`), hub download (`download`),
random test weights and inputs in the official layouts (`tiny`, `tiny_frontends`)."""
