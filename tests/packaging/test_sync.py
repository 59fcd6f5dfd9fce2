"""webhook-config/ is the chart rendered with its default values."""

import pytest

import helmrender
from helmrender import HAND_WRITTEN, CRDS, WEBHOOK_CONFIG


def test_webhook_config_is_in_sync_with_the_chart():
    helmrender.require_renderer(pytest)
    expected = helmrender.generated_files()
    for name, text in expected.items():
        path = WEBHOOK_CONFIG / name
        assert path.exists(), f"webhook-config/{name} is missing: run webhook-config/generate.sh"
        assert path.read_text() == text, f"webhook-config/{name} is stale: run webhook-config/generate.sh"
    stale = {p.name for p in WEBHOOK_CONFIG.glob("*.yaml")} - set(expected) - set(HAND_WRITTEN) - {CRDS}
    assert not stale, f"not produced by the chart any more: {stale}"
