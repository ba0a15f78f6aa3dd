"""CNN estimators: networks, regression with uncertainties, training, ensemble and metrics."""
