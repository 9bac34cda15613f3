"""API tokens: 32 random bytes shown once, stored only as their SHA-256."""
import hashlib
import secrets


def new_token() -> str:
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
