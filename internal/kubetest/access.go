package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Access is what a SubjectAccessReview asks about: a verb on a resource
// (Group "" is the core API group), in Namespace ("" for all namespaces or a
// cluster-scoped resource).
type Access struct {
	Verb, Group, Resource, Subresource, Namespace, Name string
}

func (a Access) String() string {
	r := a.Resource
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Name != "" {
		r += " " + a.Name
	}
	ns := a.Namespace
	if ns == "" {
		ns = "(all namespaces)"
	}
	return fmt.Sprintf("%s %s in %s", a.Verb, r, ns)
}

// ServiceAccountUser is the user name a service account's token
// authenticates as, and ServiceAccountGroups its groups.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ServiceAccountGroups are the groups of a service account of namespace.
func ServiceAccountGroups(namespace string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

// Allowed asks the API server, with a SubjectAccessReview, whether user (of
// groups) may do a, and returns its answer and reason.
func (c *Cluster) Allowed(ctx context.Context, user string, groups []string, a Access) (bool, string, error) {
	review := map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SubjectAccessReview",
		"spec": map[string]any{
			"user":   user,
			"groups": groups,
			"resourceAttributes": map[string]string{
				"verb": a.Verb, "group": a.Group, "resource": a.Resource, "subresource": a.Subresource,
				"namespace": a.Namespace, "name": a.Name,
			},
		},
	}
	status, body, err := c.Do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
	if err != nil {
		return false, "", err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return false, "", fmt.Errorf("SubjectAccessReview: %d %s", status, body)
	}
	var answer struct {
		Status struct {
			Allowed, Denied bool
			Reason          string
			EvaluationError string
		}
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return false, "", fmt.Errorf("SubjectAccessReview: %v: %s", err, body)
	}
	if answer.Status.EvaluationError != "" {
		return false, "", fmt.Errorf("SubjectAccessReview of %s: evaluation error: %s", a, answer.Status.EvaluationError)
	}
	return answer.Status.Allowed, answer.Status.Reason, nil
}
