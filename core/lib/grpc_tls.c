/*
 * TLS for the gRPC server: an OpenSSL context with the certificate, TLS
 * 1.2 or later (as gRPC requires), ALPN "h2" only, and optionally client
 * certificates checked against a cluster CA (mutual TLS).
 */
#include "grpc_server.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"

/* Log OpenSSL's error queue after what we were doing. */
static void
grpc_tls_log(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		strcpy(buf, "unknown error");
	log_warnx("grpc tls: %s %s: %s", what, file != NULL ? file : "", buf);
	ERR_clear_error();
}

static int
grpc_tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	/* in: length-prefixed protocol names offered by the client. */
	for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
		if (in[i] == 2 && i + 3 <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* gRPC is HTTP/2 only: refuse, do not fall back to HTTP/1.1. */
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void *
grpc_tls_server_ctx(const char *cert_file, const char *key_file,
    const char *ca_file)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		grpc_tls_log("SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		grpc_tls_log("cannot load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		grpc_tls_log("cannot load key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		grpc_tls_log("key does not match certificate", key_file);
		goto fail;
	}
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			grpc_tls_log("cannot load CA", ca_file);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	SSL_CTX_set_alpn_select_cb(ctx, grpc_tls_alpn_cb, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
grpc_tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}
