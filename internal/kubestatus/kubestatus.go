// Package kubestatus builds the Kubernetes Status bodies with which the edge refuses a request
// (extauthz's denials, keystore's login endpoints), so that kubectl and client-go print the
// message as they print an API server's.
package kubestatus

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Failure is a failed Status with an HTTP code, a machine-readable reason and a message for
// the client.
func Failure(code int, reason metav1.StatusReason, message string) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  message,
		Reason:   reason,
		Code:     int32(code),
	}
}
