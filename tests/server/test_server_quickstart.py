"""The quickstart's curl walkthrough (spec/seed-batch-quickstart.txt), run by bash against
the local server with only the host changed; its final ``jq`` line prints the answers.

The commands below are the quickstart's, in its order. What the page leaves to the reader
is filled in: the ``<model-id>`` placeholder, and capturing ``FILE_ID``, ``BATCH_ID`` and
``OUTPUT_FILE_ID`` from the responses it shows. (The page's upload line reads
``-F [email protected]`` because its HTML obfuscated ``-F file=@input.jsonl`` as an email.)
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from zgpu_pandas.server import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"

SCRIPT = r"""
set -euo pipefail
export ZGPU_API_KEY="your-api-key"
export ZGPU_PROJECT_ID="your-project-uuid"

cat > input.jsonl <<'EOF'
{"custom_id":"q-1","method":"POST","url":"/v1/chat/completions","body":{"model":"<model-id>","messages":[{"role":"user","content":"What is the capital of France?"}]}}
{"custom_id":"q-2","method":"POST","url":"/v1/chat/completions","body":{"model":"<model-id>","messages":[{"role":"user","content":"What is the capital of Germany?"}]}}
{"custom_id":"q-3","method":"POST","url":"/v1/chat/completions","body":{"model":"<model-id>","messages":[{"role":"user","content":"What is the capital of Italy?"}]}}
EOF

FILE_ID=$(curl -X POST https://api.zerogpu.ai/v1/files \
  -H "x-api-key: $ZGPU_API_KEY" \
  -H "x-project-id: $ZGPU_PROJECT_ID" \
  -F purpose=batch \
  -F file=@input.jsonl | jq -r .id)

BATCH_ID=$(curl -X POST https://api.zerogpu.ai/v1/batches \
  -H "x-api-key: $ZGPU_API_KEY" \
  -H "x-project-id: $ZGPU_PROJECT_ID" \
  -H "content-type: application/json" \
  -d '{
    "input_file_id":     "'"$FILE_ID"'",
    "endpoint":          "/v1/chat/completions",
    "completion_window": "24h"
  }' | jq -r .id)

while true; do
  RESP=$(curl -s "https://api.zerogpu.ai/v1/batches/$BATCH_ID" \
    -H "x-api-key: $ZGPU_API_KEY" \
    -H "x-project-id: $ZGPU_PROJECT_ID")
  STATUS=$(echo "$RESP" | jq -r '.status')
  echo "$RESP" | jq -c '{status, request_counts}' >&2
  case "$STATUS" in completed|failed|expired) break;; esac
  sleep 30
done
OUTPUT_FILE_ID=$(echo "$RESP" | jq -r .output_file_id)

curl -s "https://api.zerogpu.ai/v1/files/$OUTPUT_FILE_ID/content" \
  -H "x-api-key: $ZGPU_API_KEY" \
  -H "x-project-id: $ZGPU_PROJECT_ID" \
  -o output.jsonl

jq -r '"\(.custom_id): \(.response.body.choices[0].message.content)"' output.jsonl
"""


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
                    reason="needs curl, jq and bash")
def test_quickstart_curl_walkthrough(server, tmp_path):
    script = SCRIPT.replace("https://api.zerogpu.ai", server.url).replace("<model-id>", MODEL)
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    printed = sorted(proc.stdout.splitlines())
    questions = {
        "q-1": "What is the capital of France?",
        "q-2": "What is the capital of Germany?",
        "q-3": "What is the capital of Italy?",
    }
    expected = sorted(
        f"{cid}: " + builtin_reply({"model": MODEL, "messages": [{"role": "user", "content": q}]})
        for cid, q in questions.items()
    )
    assert printed == expected
    assert '"status":"completed"' in proc.stderr
    assert '"request_counts":{"total":3,"completed":3,"failed":0}' in proc.stderr
