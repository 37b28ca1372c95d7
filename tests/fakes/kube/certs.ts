/**
 * Key material for the fake API server, made with Debian's `openssl`: a CA, a server
 * certificate for 127.0.0.1/localhost, and a client certificate (`CN=pocketci-test`,
 * `O=system:masters`) signed by the same CA, as kubeadm's admin.conf has.
 *
 * @module
 */

/** PEM files of one fake cluster. */
export interface ClusterCerts {
  /** The CA certificate (PEM). */
  readonly ca: string;
  /** The server's certificate and key (PEM). */
  readonly serverCert: string;
  /** The server's key (PEM). */
  readonly serverKey: string;
  /** The client certificate (PEM). */
  readonly clientCert: string;
  /** The client key (PEM). */
  readonly clientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output()
    .catch((error) => {
      throw new Error(
        `fake kube: cannot run openssl (${(error as Error).message}); apt-get install openssl`,
      );
    });
  if (!out.success) {
    throw new Error(
      `fake kube: openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** Generates the certificates in a temporary directory, reads them and removes the directory. */
export async function makeClusterCerts(): Promise<ClusterCerts> {
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-certs-" });
  try {
    const key = (name: string, subj: string) => [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subj,
    ];
    const sign = (name: string, ext: string) => [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      ext,
    ];
    await openssl(dir, [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=fake-kube-ca",
    ]);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    await Deno.writeTextFile(`${dir}/client.ext`, "extendedKeyUsage=clientAuth\n");
    await openssl(dir, key("server", "/CN=fake-kube-apiserver"));
    await openssl(dir, sign("server", "server.ext"));
    await openssl(dir, key("client", "/O=system:masters/CN=pocketci-test"));
    await openssl(dir, sign("client", "client.ext"));
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return {
      ca: await read("ca.crt"),
      serverCert: await read("server.crt"),
      serverKey: await read("server.key"),
      clientCert: await read("client.crt"),
      clientKey: await read("client.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
