// The webhook server of berth's end-to-end tests, run as a pod: admission
// (mutating and validating) and conversion for the test's custom resource,
// `widgets.berth.test`, whose v1 has `spec.size` and v2 `spec.length`.
// Built statically with Debian's Go by the test itself; TLS certificate and
// key come from the files the test mounts at /tls.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
)

type review struct {
	APIVersion string                 `json:"apiVersion"`
	Kind       string                 `json:"kind"`
	Request    map[string]interface{} `json:"request"`
	Response   map[string]interface{} `json:"response"`
}

func serve(name string, answer func(request map[string]interface{}) map[string]interface{}) {
	http.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
		var in review
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
			http.Error(w, fmt.Sprintf("not a review: %v", err), http.StatusBadRequest)
			return
		}
		out := review{APIVersion: in.APIVersion, Kind: in.Kind, Response: answer(in.Request)}
		out.Response["uid"] = in.Request["uid"]
		log.Printf("%s %v", name, in.Request["uid"])
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

func spec(object map[string]interface{}) map[string]interface{} {
	s, _ := object["spec"].(map[string]interface{})
	if s == nil {
		s = map[string]interface{}{}
		object["spec"] = s
	}
	return s
}

func main() {
	// Every widget created gets the label mutated=true.
	serve("mutate", func(request map[string]interface{}) map[string]interface{} {
		object, _ := request["object"].(map[string]interface{})
		metadata, _ := object["metadata"].(map[string]interface{})
		var patch []map[string]interface{}
		if labels, ok := metadata["labels"].(map[string]interface{}); ok && labels != nil {
			patch = []map[string]interface{}{{"op": "add", "path": "/metadata/labels/mutated", "value": "true"}}
		} else {
			patch = []map[string]interface{}{{"op": "add", "path": "/metadata/labels", "value": map[string]string{"mutated": "true"}}}
		}
		body, _ := json.Marshal(patch)
		return map[string]interface{}{"allowed": true, "patchType": "JSONPatch", "patch": body}
	})
	// A widget larger than 100 is refused.
	serve("validate", func(request map[string]interface{}) map[string]interface{} {
		object, _ := request["object"].(map[string]interface{})
		if size, ok := spec(object)["size"].(float64); ok && size > 100 {
			return map[string]interface{}{"allowed": false, "status": map[string]interface{}{
				"code": 403, "message": fmt.Sprintf("size %v is more than 100", size)}}
		}
		return map[string]interface{}{"allowed": true}
	})
	// v1 spec.size <-> v2 spec.length.
	serve("convert", func(request map[string]interface{}) map[string]interface{} {
		desired, _ := request["desiredAPIVersion"].(string)
		objects, _ := request["objects"].([]interface{})
		converted := []interface{}{}
		for _, o := range objects {
			object := o.(map[string]interface{})
			s := spec(object)
			from, to := "length", "size"
			if desired == "berth.test/v2" {
				from, to = "size", "length"
			}
			if v, ok := s[from]; ok {
				s[to] = v
				delete(s, from)
			}
			object["apiVersion"] = desired
			converted = append(converted, object)
		}
		return map[string]interface{}{"convertedObjects": converted, "result": map[string]interface{}{"status": "Success"}}
	})
	log.Fatal(http.ListenAndServeTLS(":8443", "/tls/tls.crt", "/tls/tls.key", nil))
}
