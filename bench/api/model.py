"""bench/api/model.h's model in pydantic 1.10 (Debian's python3-pydantic), for
bench/api/fastapi_app.py and bench/api/parse_raw.py: the same ten fields and
constraints as the C descriptors."""

from enum import Enum

from pydantic import BaseModel, confloat, conint, conlist, constr


class Role(str, Enum):
    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class Address(BaseModel):
    city: constr(min_length=1, max_length=50)
    zip: constr(min_length=5, max_length=10)


class Item(BaseModel):
    name: constr(min_length=1, max_length=50)
    email: constr(min_length=3, max_length=100)
    age: conint(ge=0, lt=150)
    level: conint(ge=1, le=10)
    score: confloat(ge=0, le=100)
    active: bool
    role: Role
    address: Address
    tags: conlist(constr(min_length=1, max_length=20), max_items=8)
    note: constr(max_length=200)
