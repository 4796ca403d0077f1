"""Encryption at rest for secrets CCP holds (agent keys, provisioned tenants' secrets) and password/token hashing.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with MultiFernet so several keys can be active: the first
key encrypts, all keys decrypt. Rotation = put a new key first, run `ccp rotate-encryption-key`, drop the old key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class VaultError(Exception):
    """A ciphertext could not be decrypted with any configured key (wrong or missing CCP_ENCRYPTION_KEYS)."""


class Vault:
    """Encrypts and decrypts small secrets with the configured keys (first key encrypts)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise VaultError("no encryption key configured (CCP_ENCRYPTION_KEYS)")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise VaultError("CCP_ENCRYPTION_KEYS holds a key that is not a valid Fernet key") from None

    def encrypt(self, plaintext: str) -> str:
        """Return a URL-safe ciphertext for `plaintext`."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Return the plaintext; raise VaultError when no configured key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise VaultError("a stored secret cannot be decrypted with the configured CCP_ENCRYPTION_KEYS") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a ciphertext under the first (newest) key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise VaultError("a stored secret cannot be decrypted with the configured CCP_ENCRYPTION_KEYS") from None

    def encrypt_json(self, value) -> str:
        """Encrypt a JSON-serialisable value."""
        return self.encrypt(json.dumps(value, sort_keys=True))

    def decrypt_json(self, token: str):
        """Decrypt a value stored with encrypt_json."""
        return json.loads(self.decrypt(token))


def get_vault() -> Vault:
    """The current app's vault."""
    return current_app.extensions["ccp_vault"]


def hash_password(password: str) -> str:
    """argon2id hash of a password (salted, slow by design)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when `password` matches `stored_hash`; never raises for a wrong password or a malformed hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A new high-entropy API token (shown once; only its hash is stored)."""
    return "ccp_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of an API token. Tokens carry 256 bits of entropy, so a fast hash is enough (no dictionary attack)."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
