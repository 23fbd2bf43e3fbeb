// An aggregated API server of berth's end-to-end tests, run as a pod behind
// an APIService: the group `berth.test/v1` with one resource, `whoamis`,
// whose list answers with who the caller is. It trusts a request only as
// the aggregation layer sends it: over TLS with a client certificate of the
// request-header CA (the `extension-apiserver-authentication` ConfigMap's
// `requestheader-client-ca-file`, mounted at /ca/ca.crt) whose common name
// is an allowed one, and then takes the caller from the X-Remote-* headers,
// as the sample API server does. Its serving certificate is at /tls.
// Built statically with the machine's Go by the test itself.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	pem, err := os.ReadFile("/ca/ca.crt")
	if err != nil {
		log.Fatal(err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(pem) {
		log.Fatal("no certificate in /ca/ca.crt")
	}
	allowed := strings.Split(os.Getenv("ALLOWED_NAMES"), ",")

	answer := func(w http.ResponseWriter, body interface{}) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	}
	group := map[string]interface{}{
		"name":             "berth.test",
		"versions":         []interface{}{map[string]string{"groupVersion": "berth.test/v1", "version": "v1"}},
		"preferredVersion": map[string]string{"groupVersion": "berth.test/v1", "version": "v1"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/apis", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]interface{}{"kind": "APIGroupList", "apiVersion": "v1", "groups": []interface{}{group}})
	})
	mux.HandleFunc("/apis/berth.test", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]interface{}{"kind": "APIGroup", "apiVersion": "v1", "name": "berth.test",
			"versions": group["versions"], "preferredVersion": group["preferredVersion"]})
	})
	mux.HandleFunc("/apis/berth.test/v1", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]interface{}{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "berth.test/v1",
			"resources": []interface{}{map[string]interface{}{"name": "whoamis", "singularName": "whoami",
				"namespaced": false, "kind": "WhoAmI", "verbs": []string{"list"}}}})
	})
	mux.HandleFunc("/apis/berth.test/v1/whoamis", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]interface{}{"kind": "WhoAmIList", "apiVersion": "berth.test/v1", "metadata": map[string]string{},
			"items": []interface{}{map[string]interface{}{"kind": "WhoAmI", "apiVersion": "berth.test/v1",
				"metadata": map[string]string{"name": "caller"},
				"user":     r.Header.Get("X-Remote-User"), "groups": r.Header.Values("X-Remote-Group")}}})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

	// Only the aggregator may speak for a caller: anything else is refused.
	authenticated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			mux.ServeHTTP(w, r)
			return
		}
		if len(r.TLS.VerifiedChains) == 0 {
			log.Printf("%s %s: refused, no client certificate of the request-header CA", r.Method, r.URL.Path)
			http.Error(w, "a client certificate of the request-header CA is required", http.StatusUnauthorized)
			return
		}
		name := r.TLS.VerifiedChains[0][0].Subject.CommonName
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			log.Printf("%s %s: refused, %q is not an allowed name", r.Method, r.URL.Path, name)
			http.Error(w, "not an allowed front proxy", http.StatusForbidden)
			return
		}
		log.Printf("%s %s as %q %v", r.Method, r.URL.Path, r.Header.Get("X-Remote-User"), r.Header.Values("X-Remote-Group"))
		mux.ServeHTTP(w, r)
	})
	server := &http.Server{
		Addr:      ":8443",
		Handler:   authenticated,
		TLSConfig: &tls.Config{ClientCAs: cas, ClientAuth: tls.VerifyClientCertIfGiven},
	}
	log.Fatal(server.ListenAndServeTLS("/tls/tls.crt", "/tls/tls.key"))
}
