// Run by the mongo image once, on the first start with an empty data volume (/docker-entrypoint-initdb.d): the user
// the services log in as (MONGO_USER / MONGO_PASSWORD from .env), allowed to read and write the four services'
// databases (MONGO_DB_PREFIX "jaklapor") and nothing else. The administrator (MONGO_ROOT_USER) is created by the image.
const services = ["intake", "routing", "notify", "stats"];
db.getSiblingDB("admin").createUser({
  user: process.env.MONGO_USER,
  pwd: process.env.MONGO_PASSWORD,
  roles: services.map((service) => ({ role: "readWrite", db: `jaklapor_${service}` })),
});
