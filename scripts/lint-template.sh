#!/usr/bin/env bash
# Lints template.yaml: `sam validate --lint`, cfn-lint on the SAM source, and cfn-lint on the
# expanded CloudFormation (which alone shows what the transform generates, e.g. a circular
# dependency between the HTTP API and the functions). Tools in .venv-sam, pinned, from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
if [ ! -x .venv-sam/bin/python ]; then
  python3 -m venv .venv-sam
fi
if ! .venv-sam/bin/sam --version 2>/dev/null | grep -q "$SAM_CLI_VERSION" \
  || ! .venv-sam/bin/cfn-lint --version 2>/dev/null | grep -q "$CFN_LINT_VERSION"; then
  .venv-sam/bin/pip install -q --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
fi

export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
.venv-sam/bin/sam validate --lint --region us-east-1 -t template.yaml
.venv-sam/bin/cfn-lint template.yaml
mkdir -p target
.venv-sam/bin/python scripts/translate_template.py template.yaml target/template.expanded.json
.venv-sam/bin/cfn-lint target/template.expanded.json
.venv-sam/bin/python scripts/check_template.py target/template.expanded.json
echo "template.yaml: sam validate --lint, cfn-lint (source and expanded), check_template.py: clean"
