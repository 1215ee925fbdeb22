"""Systems: each seed paper's method as a recipe of deformation, inference, pose, objective
and schedule over the shared engine (``systems.registry``)."""
