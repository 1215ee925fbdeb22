"""workflows layer: end-to-end tours built from the layers below (simulate, train, analysis)."""
