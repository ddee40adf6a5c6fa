#!/usr/bin/env bash
# The build that travels to a GPU machine (docs/gpu.md): the CLI Engine.Bench and the test suite's runner
# Engine.Tests published self-contained (never trimmed: trimming breaks ILGPU at run time) into one folder, where
# they share one copy of the .NET runtime, and packed into DIR/engine.tar.gz, the archive scripts/gpu-check.sh
# unpacks. Stops at the first failed publish, leaving no archive behind.
#
#   scripts/gpu-publish.sh [DIR]        DIR defaults to .gpu (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpu}
rm -rf "$dir/engine" "$dir/engine.tar.gz"
mkdir -p "$dir"
for app in Engine.Bench Engine.Tests; do
  dotnet publish "$app" -c Release -r linux-x64 --self-contained -p:InvariantGlobalization=true \
    -p:DebugType=none -o "$dir/engine"
done
tar -C "$dir" -czf "$dir/engine.tar.gz" engine
rm -rf "$dir/engine"
echo "packed $dir/engine.tar.gz ($(du -h "$dir/engine.tar.gz" | cut -f1))"
