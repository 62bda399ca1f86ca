import dataclasses

import pytest

from synreal.audit.params import AuditParams
from synreal.errors import ConfigError


@pytest.mark.parametrize("field", dataclasses.fields(AuditParams), ids=lambda f: f.name)
def test_every_field_has_a_default_and_a_description(field):
    assert field.default is not dataclasses.MISSING
    assert len(field.metadata.get("description", "")) > 10


@pytest.mark.parametrize("key,value,match", [
    ("scale_backend", "yolo-v9", "foreground"),
    ("person_backend", "gpt-4o", "owlvit"),
    ("consistency_backend", "convnext", "probe-on-real"),
    ("blocking_overlap", 1.5, "blocking_overlap"),
    ("batch_size", 0, "batch_size"),
    ("diversity_resamples", 0, "diversity_resamples"),
    ("fid_resamples", -1, "fid_resamples"),
])
def test_bad_values_name_the_key_and_the_options(key, value, match):
    with pytest.raises(ConfigError, match=match):
        AuditParams(**{key: value})
