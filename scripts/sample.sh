#!/usr/bin/env bash
# Packs Engine.Kernels, Engine.Core and Engine.Models into a fresh folder, then restores, builds and runs
# samples/FashionMnistClassifier against exactly those packages, as a user's program would consume them:
#
#     scripts/sample.sh [data-folder] [iterations]      # data default: Engine.Tests/TestData/fashion-mnist-subset
#
# ENGINE_VERSION overrides the packages' version. The packages are restored into a fresh packages folder, so a
# package of the same version left in NuGet's global cache by an earlier build cannot be used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath -m "${1:-Engine.Tests/TestData/fashion-mnist-subset}")
shift || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ENGINE_PACKAGES="$work/feed"     # the `local` source of samples/FashionMnistClassifier/nuget.config
version=${ENGINE_VERSION:-$(dotnet msbuild Engine.Models -getProperty:Version)}

# Runs a build step quietly: its output is shown only when it fails.
quietly() {
  local output
  output=$("$@" 2>&1) || { echo "$output"; echo "sample: failed: $*"; return 1; }
}

echo "sample: packing Engine $version into $ENGINE_PACKAGES, then building samples/FashionMnistClassifier with it"
CI=true quietly dotnet pack Engine.sln -c Release -o "$ENGINE_PACKAGES" -p:Version="$version" --nologo
sample=samples/FashionMnistClassifier
quietly dotnet build "$sample" -c Release --force --nologo -p:EngineVersion="$version" \
  -p:RestorePackagesPath="$work/packages"
dotnet "$sample/bin/Release/net10.0/FashionMnistClassifier.dll" "$data" "$@"
