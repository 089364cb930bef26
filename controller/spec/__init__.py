"""The service YAML: models, normalisation and friendly errors."""

from controller.spec.errors import SpecError, SpecIssue
from controller.spec.loader import (
    ignored_fields,
    load_spec_file,
    load_spec_text,
    parse_yaml,
    read_spec_file,
)
from controller.spec.service import ServiceSpec, check_service_name, is_secret_name

__all__ = [
    "ServiceSpec",
    "SpecError",
    "SpecIssue",
    "check_service_name",
    "ignored_fields",
    "is_secret_name",
    "load_spec_file",
    "load_spec_text",
    "parse_yaml",
    "read_spec_file",
]
