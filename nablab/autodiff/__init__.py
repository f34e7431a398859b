"""The automatic-differentiation engine: primitives, transforms, numerics and graphs."""
