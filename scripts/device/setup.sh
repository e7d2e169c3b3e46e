#!/bin/bash
# Sourced on the device machine, from the repository's root: unpacks what pack.sh packed (python3's
# lzma and tarfile, so that no xz is needed there) and puts that node first on PATH.
mkdir -p /tmp/devnode
python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" .devnode/node.xz /tmp/devnode/node
chmod +x /tmp/devnode/node
export PATH=/tmp/devnode:$PATH
[ -d node_modules/@tensorflow/tfjs-core ] || python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall('.')" .devnode/modules.tar.xz
echo "node $(node --version), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
