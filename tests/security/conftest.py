"""Security tests reuse the API's token fixtures and the UI's login through the real form."""

from tests.api.conftest import api, make_token  # noqa: F401 - fixtures
from tests.web.conftest import login  # noqa: F401 - fixture
