"""``make bench``: the pipeline against references measured in the same run on the same data."""
