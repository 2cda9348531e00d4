"""ORCHESTRATOR_API_KEYS: its form, its errors, and secrets kept out of what prints."""

from __future__ import annotations

import pytest

from orchestrator.config import parse_api_keys, settings_from_env
from orchestrator.errors import ConfigurationError


def test_api_keys_parse() -> None:
    assert parse_api_keys("") == {}
    assert parse_api_keys(" AK1:s/e+c:r=t , AK2:x ,") == {"AK1": "s/e+c:r=t", "AK2": "x"}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Zq9secretonly", "Zq9secretonly"),
        ("A B:Zq9secret", "Zq9secret"),
        ("AK:", None),
        ("AK:Zq9sec Zq9ret", "Zq9sec"),
        ("AK:Zq9a,AK:Zq9b", "Zq9"),
        (":Zq9secret", "Zq9secret"),
        ("AK/1:Zq9secret", "Zq9secret"),
    ],
)
def test_malformed_api_keys_are_a_configuration_error_without_the_secret(
    text: str, secret: str | None
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_env(api_keys=text)
    message = str(caught.value)
    assert message.startswith("ORCHESTRATOR_API_KEYS is malformed")
    assert "\n" not in message
    if secret is not None:
        assert secret not in message


def test_settings_never_show_a_secret() -> None:
    settings = settings_from_env(api_keys="AKIDLOCAL:hunter2hunter2")
    assert settings.api_keys["AKIDLOCAL"].get_secret_value() == "hunter2hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
