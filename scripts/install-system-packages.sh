#!/usr/bin/env bash
# Installs, on a fresh Debian 12 (bookworm) machine, every system package the demo and the tests
# need: the CNCF registry, skopeo, htpasswd, openssl, script(1), Chromium, docker-credential-pass with
# pass and gnupg, and from bookworm-backports Go 1.23
# and go-containerregistry's source (the test registry that serves the OCI referrers API is built
# from it). Packages already present are left alone; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
# util-linux's script(1): the CLI tests put its stderr on a pseudo-terminal (test/cli-terminal.test.ts).
command -v script >/dev/null || missing+=(bsdutils)
# Debian's Chromium: the listener's status page is tested in a real browser (driven headless by the
# npm package playwright-core; no browser is ever downloaded).
command -v chromium >/dev/null || missing+=(chromium)
# A real credential helper, over pass and a throwaway gpg key (test/docker-credentials.test.ts).
command -v docker-credential-pass >/dev/null || missing+=(golang-docker-credential-helpers)
command -v pass >/dev/null || missing+=(pass)
command -v gpg >/dev/null || missing+=(gnupg)

GO=/usr/lib/go-1.23/bin/go
backports=()
[ -x "$GO" ] || backports+=(golang-1.23-go)
[ -d /usr/share/gocode/src/github.com/google/go-containerregistry ] || backports+=(golang-github-google-go-containerregistry-dev)
if [ ${#backports[@]} -gt 0 ] && ! grep -qs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
  # The machine's own mirror and keyring (the first stanza of its sources), for the backports suite.
  awk -v RS= 'NR == 1' /etc/apt/sources.list.d/debian.sources | sed 's/^Suites:.*/Suites: bookworm-backports/' >/etc/apt/sources.list.d/backports.sources
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#backports[@]} -gt 0 ]; then
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
  [ ${#backports[@]} -eq 0 ] || apt-get install -y -qq -t bookworm-backports "${backports[@]}" >/dev/null
fi
echo "system packages: docker-registry, skopeo, htpasswd, openssl, script, chromium, docker-credential-pass, pass, gnupg, Go 1.23 and go-containerregistry are installed"
