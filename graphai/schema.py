"""
Tool schemas for LLM function calling (``FunctionSchema``, ``get_schemas``), as in graphai-lib.

Plain dataclasses: pydantic is needed only by ``FunctionSchema.from_pydantic`` (imported there).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Union, get_args, get_origin

__all__ = [
    "FunctionSchema",
    "OpenAIAPI",
    "Parameter",
    "StrEnum",
    "get_schemas",
    "openai_type_mapping",
]


class StrEnum(str, Enum):
    """Backport of ``enum.StrEnum`` (Python 3.10)."""

    def __str__(self) -> str:
        return str(self.value)


def openai_type_mapping(param_type: str) -> str:
    """Map a Python type name to a JSON-schema type: int/float→number, str→string,
    bool→boolean, anything else→object."""
    return {"int": "number", "float": "number", "str": "string", "bool": "boolean"}.get(
        param_type, "object"
    )


@dataclass
class Parameter:
    """One parameter of a function schema."""

    name: str
    type: str
    default: Any
    required: bool
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {self.name: {"description": self.description, "type": openai_type_mapping(self.type)}}

    def model_dump(self) -> dict[str, Any]:
        """pydantic-style dump, for code written against graphai-lib."""
        return asdict(self)


class OpenAIAPI(StrEnum):
    COMPLETIONS = "completions"
    RESPONSES = "responses"


def _annotation_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) else str(annotation)


@dataclass
class FunctionSchema:
    """A function's schema for LLM function calling."""

    name: str
    description: str
    signature: str
    output: str
    parameters: list[Parameter] = field(default_factory=list)

    @classmethod
    def from_callable(cls, function: Callable[..., Any]) -> FunctionSchema:
        """Build the schema of a callable (name, docstring, signature, parameters)."""
        if not callable(function):
            raise TypeError("Function must be a Callable")
        name = getattr(function, "__name__", type(function).__name__)
        doc = inspect.getdoc(function)
        sig = inspect.signature(function)
        parameters = [
            Parameter(
                name=p.name,
                type=_annotation_name(p.annotation),
                default=p.default,
                required=p.default is inspect.Parameter.empty,
            )
            for p in sig.parameters.values()
        ]
        return cls(
            name=name,
            description=str(doc) if doc else "",
            signature=str(sig),
            output=str(sig.return_annotation),
            parameters=parameters,
        )

    @classmethod
    def from_pydantic(cls, model: Any) -> FunctionSchema:
        """Build the schema of a pydantic model class (needs pydantic)."""
        from pydantic_core import PydanticUndefined

        parameters = []
        parts = []
        for field_name, info in model.model_fields.items():
            ftype = model.__annotations__.get(field_name)
            type_name = str(ftype)
            origin, args = get_origin(ftype), get_args(ftype)
            if origin is Union:
                non_none = [a for a in args if a is not type(None)]
                if non_none:
                    type_name = getattr(non_none[0], "__name__", str(non_none[0]))
            elif ftype is not None and hasattr(ftype, "__name__"):
                type_name = ftype.__name__
            required = info.default is PydanticUndefined and info.default_factory is None
            if info.default is not PydanticUndefined and info.default is not None:
                default: Any = info.default
            elif info.default_factory is not None:
                try:
                    default = info.default_factory()
                except TypeError:
                    default = "<factory>"
            else:
                default = inspect.Parameter.empty
            parameters.append(
                Parameter(
                    name=field_name,
                    description=info.description,
                    type=type_name,
                    default=default,
                    required=required,
                )
            )
            if default is not inspect.Parameter.empty:
                parts.append(f"{field_name}: {type_name} = {default!r}")
            else:
                parts.append(f"{field_name}: {type_name}")
        return cls(
            name=model.__name__,
            description=model.__doc__ or "",
            signature=f"({', '.join(parts)}) -> dict",
            output="dict",
            parameters=parameters,
        )

    def _parameters_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {k: v for p in self.parameters for k, v in p.to_dict().items()},
            "required": [p.name for p in self.parameters if p.required],
        }

    def to_dict(self) -> dict[str, Any]:
        """OpenAI chat-completions tool schema."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self._parameters_schema(),
            },
        }

    def to_openai(self, api: OpenAIAPI | str = OpenAIAPI.COMPLETIONS) -> dict[str, Any]:
        """Tool schema for the OpenAI completions or responses API."""
        if api == "completions":
            return self.to_dict()
        if api == "responses":
            return {
                "type": "function",
                "name": self.name,
                "description": self.description,
                "parameters": self._parameters_schema(),
            }
        raise ValueError(f"Unrecognized OpenAI API: {api}")

    def model_dump(self) -> dict[str, Any]:
        """pydantic-style dump, for code written against graphai-lib."""
        return asdict(self)


DEFAULT = {"default", "openai", "ollama", "litellm"}


def get_schemas(callables: Sequence[Callable[..., Any]], format: str = "default") -> list[dict[str, Any]]:
    """Tool schemas of several callables; ``format`` is ``default``/``openai``/``ollama``/``litellm``."""
    if format in DEFAULT:
        return [FunctionSchema.from_callable(c).to_dict() for c in callables]
    raise ValueError(f"Format {format} not supported")
