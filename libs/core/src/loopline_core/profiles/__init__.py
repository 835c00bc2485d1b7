"""Reference data profiles: what a version's training data looked like.

The trainer builds a profile from its training set and stores it with the
version in the registry; the drift detector compares live inputs against it.
Both sides share this one implementation and its JSON serialization.
"""

from loopline_core.profiles.builder import FeatureSpec, build_profile
from loopline_core.profiles.reference import CategoricalProfile, NumericProfile, ReferenceProfile

__all__ = ["CategoricalProfile", "FeatureSpec", "NumericProfile", "ReferenceProfile", "build_profile"]
