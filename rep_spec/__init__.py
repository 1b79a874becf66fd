"""REP 1.0 as data: the schemas, registries and validator shared by the server and the kit.

Neither the reference server nor the conformance kit copies a field list, enum or limit:
they ask this package, which reads ``schemas/``.

Public surface::

    catalog()            -> Catalog            message types, error codes, close codes, roles
    requirements()       -> RequirementIndex   the normative statements by id
    schema_registry()    -> referencing.Registry
    MessageValidator     classify a client message / check a server message
"""

from rep_spec.catalog import Catalog, CloseCode, ErrorCode, MessageType, catalog
from rep_spec.requirements import Requirement, RequirementIndex, requirements
from rep_spec.schema_files import schema_dir, schema_registry
from rep_spec.validation import (
    MessageValidator,
    Problem,
    decode_text_frame,
)

__all__ = [
    "Catalog",
    "CloseCode",
    "ErrorCode",
    "MessageType",
    "MessageValidator",
    "Problem",
    "Requirement",
    "RequirementIndex",
    "catalog",
    "decode_text_frame",
    "requirements",
    "schema_dir",
    "schema_registry",
]
