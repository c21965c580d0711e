#!/usr/bin/env bash
# The dashboard over TLS: couponctl --tls to coupond's --tls-port, the server's certificate
# checked against --tls-ca and the -a host name; the server restarted (a new handshake on the
# reconnection); a CA that did not sign the certificate shown as the reason it keeps retrying.
# The certificates are made here, in the test's temporary directory.
. "$(dirname "$0")/lib.sh"

# make_cert NAME CN CA: a P-256 key and certificate NAME signed by CA (or self-signed: "").
make_cert() {
    local name=$1 cn=$2 ca=$3
    if [ -z "$ca" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -keyout "$TMP/$name.key" -out "$TMP/$name.pem" -subj "/CN=$cn" 2>/dev/null
        return
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/$name.key" \
        -out "$TMP/$name.csr" -subj "/CN=$cn" 2>/dev/null
    echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$TMP/$name.ext"
    openssl x509 -req -in "$TMP/$name.csr" -CA "$TMP/$ca.pem" -CAkey "$TMP/$ca.key" \
        -set_serial 7 -days 2 -extfile "$TMP/$name.ext" -out "$TMP/$name.pem" 2>/dev/null
}
make_cert ca "test CA" ""
make_cert other "another CA" ""
make_cert srv localhost ca

TLS_FLAGS=(--tls-cert "$TMP/srv.pem" --tls-key "$TMP/srv.key")
start_server 0 --tls-port 0 "${TLS_FLAGS[@]}"
TLS_PORT=$(grep 'op=LISTEN_TLS' "$SERVER_LOG" | tail -n 1 | sed 's/.* port=\([0-9]*\).*/\1/')
PORT=$(grep 'op=LISTEN ' "$SERVER_LOG" | tail -n 1 | sed 's/.* port=\([0-9]*\).*/\1/')
awk 'BEGIN { for (i = 1; i <= 3; i++) printf "TLS-%d,STANDARD,10,PERCENT,2031-01-01,1\n", i }' |
    ctl --upload - >/dev/null

dash_start_args 90 24 "LANG=C LC_ALL=C NO_COLOR=1 TERM=tmux-256color" --tls --tls-ca \
    "$TMP/ca.pem" -a localhost -p "$TLS_PORT" -k "$KEY" -i 200
wait_screen "localhost:$TLS_PORT  connected"
wait_screen '^  STANDARD +3 +0 +0 +3 +0 +0 +0$'
grep -q 'op=TLS version=TLSv1.3' "$SERVER_LOG" || fail "the server logged no TLS handshake"
ok "the dashboard over TLS: connected, the counts shown"

kill_server
wait_screen "RECONNECTING to localhost:$TLS_PORT"
start_server "$PORT" --tls-port "$TLS_PORT" "${TLS_FLAGS[@]}"
wait_screen "localhost:$TLS_PORT  connected"
wait_screen_gone 'RECONNECTING'
ok "the server restarted: the dashboard reconnected with a new handshake"
keys q
wait_screen '^EXITED=0$'

dash_start_args 120 24 "LANG=C LC_ALL=C NO_COLOR=1 TERM=tmux-256color" --tls --tls-ca \
    "$TMP/other.pem" -a localhost -p "$TLS_PORT" -k "$KEY" -i 200
wait_screen 'RECONNECTING'
wait_screen 'certificate verify failed'
ok "a CA that did not sign the server's certificate: the dashboard says so and retries"
keys q
wait_screen '^EXITED=0$'
