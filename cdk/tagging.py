"""The tags every resource of the app carries: project, environment and component.

Roles that tag what they create (the serving stack's change role tags the resources a
release creates) may set exactly these keys (:data:`TAG_KEYS`).
"""

from __future__ import annotations

import re

from aws_cdk import Stack, Stage, Tags

PROJECT_TAG = "project"
ENVIRONMENT_TAG = "environment"
COMPONENT_TAG = "component"
TAG_KEYS = (PROJECT_TAG, ENVIRONMENT_TAG, COMPONENT_TAG)

#: The ``component`` tag of each stack, by construct id; other stacks use their id in kebab case.
COMPONENTS = {
    "ModelBuild": "model-build",
    "ReleaseState": "release-state",
    "Serving": "serving",
}


def tag_environment(
    scope: Stage | Stack, *, project: str, environment: str, component: str | None = None
) -> None:
    """Tag every taggable resource with ``project``, ``environment`` and ``component``.

    ``component`` is the stack the resource belongs to (model-build, serving, ...), so a cost
    report can be split by what the money was spent on: given, or from the stack's id.
    """
    Tags.of(scope).add(PROJECT_TAG, project)
    Tags.of(scope).add(ENVIRONMENT_TAG, environment)
    stacks = (
        [scope]
        if isinstance(scope, Stack)
        else [c for c in scope.node.children if isinstance(c, Stack)]
    )
    for stack in stacks:
        name = (
            component
            or COMPONENTS.get(stack.node.id)
            or re.sub(r"(?<!^)(?=[A-Z])", "-", stack.node.id).lower()
        )
        Tags.of(stack).add(COMPONENT_TAG, name)
