"""Hypothesis' settings for the property tests of tests/fuzz.

A few hundred examples per property: a few seconds each on a shared CI machine. No deadline: a
slow example on a busy machine is not a failure (the bulk runs time themselves).
`HYPOTHESIS_PROFILE=long` runs each property much longer, to look for bugs rather than to guard.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
