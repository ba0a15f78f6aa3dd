"""
Lens-light removal: `ICADeblender` (two or more bands) and `SersicDeblender` (one band).

Both are registered deblender plugins (``lenskit.get("deblender", "ica")``)
and return a `~lenskit.core.Deblended`.
"""
