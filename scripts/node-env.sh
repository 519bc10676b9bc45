# Sourced: puts Node.js 24 first on PATH when the machine's node is older than 22 (cached in ~/.cache/llem).
# llem itself runs on Node >= 20 (ADR 0015); the tests, tsx and the controller want 22+. The binary
# comes from the npm registry's node-<platform>-<arch> package (what the `node` npm package installs).
llem_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(llem_node_major)" -lt 22 ]; then
  LLEM_NODE_VERSION=24.22.3
  LLEM_NODE_DIR="${LLEM_CACHE:-$HOME/.cache/llem}/node24/bin"
  if [ ! -x "$LLEM_NODE_DIR/node" ]; then
    llem_platform=$(node -p 'process.platform + "-" + process.arch' 2>/dev/null || echo linux-x64)
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent "node-$llem_platform@$LLEM_NODE_VERSION" >/dev/null \
        && tar xzf "node-$llem_platform-$LLEM_NODE_VERSION.tgz" package/bin/node); then
      mkdir -p "$LLEM_NODE_DIR" && mv "$tmp/package/bin/node" "$LLEM_NODE_DIR/node"
    else
      echo "scripts/node-env.sh: could not fetch Node.js $LLEM_NODE_VERSION (npm package node-$llem_platform); install Node.js >= 22" >&2
    fi
    rm -rf "$tmp"
  fi
  [ -x "$LLEM_NODE_DIR/node" ] && export PATH="$LLEM_NODE_DIR:$PATH"
fi
