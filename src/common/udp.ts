/** UDP socket set-up shared by the protocol servers (CA and pvAccess search, beacons). */
import dgram from "node:dgram";

/**
 * Binds a UDP socket with SO_REUSEADDR, so other servers of the same protocol on this host can
 * share the port; rejects (and closes the socket) when the bind fails.
 */
export function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
    const onError = (e: Error) => {
      s.close();
      reject(e);
    };
    s.once("error", onError);
    s.bind(port, address, () => {
      s.off("error", onError);
      resolve(s);
    });
  });
}
