"""Expands the SAM template into the CloudFormation that would be deployed:
`python translate_template.py template.yaml out.json`.

cfn-lint on the SAM source does not see what the transform generates (the HTTP API's OpenAPI
body, the permissions); on the expanded template it finds, for example, circular dependencies
between the API and the functions. Offline: the template uses no managed policy by name; needs AWS_DEFAULT_REGION for the
pseudo parameters.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The transform asks for managed policy ARNs only for policies named without an ARN."""

    def load(self):
        return {}


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # As `sam package` would: local code is uploaded, and the template then names it in S3.
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(
            properties.get("CodeUri"), str
        ):
            properties["CodeUri"] = "s3://packaged-code/function.zip"
    expanded = transform(template, {}, NoManagedPolicies())
    with open(target, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1)


if __name__ == "__main__":
    main()
