-- Promote the running canary now: the operator promotes the revision that adapterops.io/promote names,
-- if it is still the canary (the same annotation `kubectl adapterops promote` sets).
if obj.status == nil or obj.status.canary == nil or obj.status.canary.revision == nil then
  error("no canary is running: nothing to promote", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["adapterops.io/promote"] = obj.status.canary.revision
return obj
