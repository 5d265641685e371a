-- Resume a suspended sweep (spec.suspend: false).
obj.spec.suspend = false
return obj
