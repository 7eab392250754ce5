"""Example campaign configs, shipped inside the package as ``paretolab.campaigns``:
``paretolab init NAME`` copies one into the current folder."""
