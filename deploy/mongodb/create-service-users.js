// Run by the mongo image once, on the first start with an empty data volume (/docker-entrypoint-initdb.d): one user
// per service (MONGO_<SERVICE>_USER / MONGO_<SERVICE>_PASSWORD from .env), each allowed to read and write its own
// service's database (MONGO_DB_PREFIX "jaklapor") and nothing else: a service cannot read another's data.
// The administrator (MONGO_ROOT_USER) is created by the image.
const services = ["intake", "routing", "notify", "stats"];
for (const service of services) {
  const name = service.toUpperCase();
  db.getSiblingDB("admin").createUser({
    user: process.env[`MONGO_${name}_USER`],
    pwd: process.env[`MONGO_${name}_PASSWORD`],
    roles: [{ role: "readWrite", db: `jaklapor_${service}` }],
  });
}
