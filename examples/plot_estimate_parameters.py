"""
Estimating lens parameters with a shipped CNN
=============================================

Simulate a test set of HST lenses with the paper's test-time effects (masks
covering under 2% of the arc flux), estimate it with the shipped HST
estimator, print the error tables of Hezaveh et al. (Table 1) and Pearson et
al. (Table 1), check the calibration of the predicted uncertainties and draw
predicted against true values with 68% and 95% bands (Fig. 1 of Hezaveh et al.).
"""

import time

import matplotlib.pyplot as plt

import lenskit
from lenskit.estimators.metrics import error_table, summary
from lenskit.plotting import plot_predicted_vs_true

est = lenskit.load_estimator("hst_wfc3")
print(est)
print("trained for", est.expects, "in", est.training.get("completed_steps"), "steps")

# %%
# A test set with clumpy sources (the shipped estimator's own test set uses
# held-out real galaxies; see the Benchmarks page).
test = lenskit.Simulator(instrument=lenskit.get("instrument", "hst_wfc3")(test=True), source="sersic_clump",
                         seed=123).sample(300)
t0 = time.perf_counter()
estimate = est.predict(test, batch_size=64)
print(f"{len(test)} systems in {time.perf_counter() - t0:.2f} s")
print(estimate.table[:5])

# %%
# Errors: the half-width of the central 68% interval, RMS and bias, and the
# fraction of true values inside the predicted 68% interval (0.68 when calibrated).
res = {"hst_wfc3": summary(estimate, test.params)}
for metric in ("err68", "rms", "bias", "coverage68"):
    print(metric)
    print(error_table(res, metric))

# %%
fig = plot_predicted_vs_true(estimate, test.params)
plt.show()
