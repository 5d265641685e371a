-- Abort the running canary: the operator rolls back the revision that adapterops.io/abort names, if it
-- is still the canary (the same annotation `kubectl adapterops abort` sets); the stable revision keeps
-- serving and the aborted revision is not retried until the spec changes.
if obj.status == nil or obj.status.canary == nil or obj.status.canary.revision == nil then
  error("no canary is running: nothing to abort", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["adapterops.io/abort"] = obj.status.canary.revision
return obj
