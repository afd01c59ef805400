"""The FastAPI anchor of bench/run_api.sh: bench/api/model.h's model in pydantic.

Debian's FastAPI (0.92) on pydantic 1.10 (Debian's python3-pydantic, pure
Python: not the Cython build PyPI ships, nor pydantic 2's Rust core). The
same two routes as bench/bench_api_server.c:

    POST /validate      the body validated into Item, returned: FastAPI
                        encodes it (jsonable_encoder, then JSONResponse's
                        compact json.dumps); 422 for a bad body
    POST /jwt/validate  the same behind HTTPBearer + PyJWT's jwt.decode
                        (HS256 only, exp checked): 401 without a valid token

No response_model (nor a return annotation, which FastAPI >= 0.89 takes as
one): that would validate the answer a second time, which weave's side does
not do. async def handlers: no thread pool. run_api.sh runs it with
Debian's python and uvicorn's fast mode, one worker, on CPU 0:

    JWT_KEY_FILE=... taskset -c 0 /usr/bin/python3 -m uvicorn --app-dir bench/api \
        fastapi_app:app --host 127.0.0.1 --port PORT --loop uvloop --http httptools \
        --workers 1 --no-access-log --log-level warning --backlog 4096

GET /settings says what runs (versions, whether pydantic is compiled), for
the suite's header.
"""

import os
import sys

import fastapi
import jwt
import pydantic
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from model import Item


def _secret() -> bytes:
    path = os.environ.get("JWT_KEY_FILE")
    if not path:
        sys.exit("fastapi_app: JWT_KEY_FILE (the HMAC secret's file) is not set")
    with open(path, "rb") as f:
        key = f.read()
    return key[:-1] if key.endswith(b"\n") else key  # as weave's hmac_key_file


SECRET = _secret()


app = FastAPI()

# auto_error=False: FastAPI 0.92's HTTPBearer answers a missing header 403;
# the 401 with WWW-Authenticate that weave (and RFC 6750) gives is raised here.
bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def claims(creds: HTTPAuthorizationCredentials = Depends(bearer)) -> dict:
    if creds is None or creds.scheme.lower() != "bearer":
        raise _unauthorized("Not authenticated")
    try:
        return jwt.decode(creds.credentials, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError as e:
        raise _unauthorized(str(e))


@app.post("/validate")
async def validate(item: Item):
    """api.validate: validated, then encoded back."""
    return item


@app.post("/jwt/validate")
async def jwt_validate(item: Item, _claims: dict = Depends(claims)):
    """api.jwt: the same behind the bearer token."""
    return item


@app.get("/settings")
async def settings():
    return {
        "fastapi": fastapi.__version__,
        "pydantic": pydantic.VERSION,
        "pydantic_compiled": bool(getattr(pydantic, "compiled", False)),
        "pyjwt": jwt.__version__,
    }
