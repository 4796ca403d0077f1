"""Security tests reuse the API's token fixtures."""

from tests.api.conftest import api, make_token  # noqa: F401 - fixtures
